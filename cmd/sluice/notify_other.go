//go:build !linux

package main

// monotonicUsec is systemd's clock, which exists on Linux only; elsewhere
// the notification goes without MONOTONIC_USEC.
func monotonicUsec() (uint64, bool) { return 0, false }
