module github.com/moneta-cache/moneta/mnemonic

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/bradfitz/gomemcache v0.0.0-20260422231931-4d751bb6e37c
	github.com/linxGnu/grocksdb v1.7.14
	github.com/prometheus/client_golang v1.25.0
)
