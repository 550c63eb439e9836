//go:build e2e

package cli

// make e2e runs the scale tests at the size the scale issue names: 2,000
// partitions, 50 of them failing.
func init() { scaleAccounts = 200 }
