//go:build !unix

package archive

import "sync"

var dirLocks sync.Map // folder -> *sync.Mutex

// lockDir takes an exclusive lock on the folder dir within this process
// (systems without flock(2): concurrent trailfill processes writing the
// same local folder are not serialised there), and returns its release.
func lockDir(dir string) (func(), error) {
	mu, _ := dirLocks.LoadOrStore(dir, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock, nil
}
