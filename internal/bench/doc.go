// Package bench holds trailfill's benchmarks (`make bench`): per-partition
// pacing against the emulated 2 requests/s quota at several API latencies,
// trailfill beside a fixed-split client on the same emulator, requests spent
// on sparse ranges, the seed design's approach on the same emulator, and peak
// memory for a 100,000-event window. The figures go in docs/benchmarks.md.
package bench
