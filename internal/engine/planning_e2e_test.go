//go:build e2e

package engine_test

// make e2e plans LookupEvents' whole 90 days of archived windows (4,320
// manifests): the figure the scale issue asks for.
func init() { planningDays = 90 }
