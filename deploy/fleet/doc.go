// Package fleet holds the system tests of a fleet of moneta hosts and the
// operator files in deploy/ that describe it: twemproxy (nutcracker) with
// deploy/nutcracker.yml in front of three real moneta hosts, key placement
// compared between nutcracker and the Go client, a host killed and restarted
// under verified load, and the metric names that deploy/prometheus-alerts.yml
// and deploy/grafana-dashboard.json query checked against a running rend's
// and mnemonic's /metrics. It has no code outside its tests.
//
// The tests need nutcracker (Debian package nutcracker, installed by
// scripts/deps.sh) and fail, not skip, without it.
package fleet
