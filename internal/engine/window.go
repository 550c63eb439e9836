package engine

import (
	"fmt"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
)

// DefaultWindow is the span of one window: the unit of manifests and resume.
const DefaultWindow = contract.DefaultWindowMinutes * time.Minute

// CheckWindow validates a window length: a whole number of 5-minute slices that
// divides a day, so windows align to the clock and never cross midnight UTC.
func CheckWindow(w time.Duration) error {
	if w < archive.SliceLength || w%archive.SliceLength != 0 || (24*time.Hour)%w != 0 {
		return fmt.Errorf("window %s must be a multiple of 5m that divides 24h (e.g. 30m)", w)
	}
	return nil
}
