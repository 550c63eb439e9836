//go:build race

package emulator

// raceEnabled reports a -race build, where large tests shrink.
const raceEnabled = true
