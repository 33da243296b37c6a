//go:build !race

package orca

const raceEnabled = false
