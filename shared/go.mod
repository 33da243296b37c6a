module github.com/moneta-cache/moneta/shared

go 1.26.8

require github.com/BurntSushi/toml v1.6.0

require (
	github.com/bradfitz/gomemcache v0.0.0-20260422231931-4d751bb6e37c // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
)
