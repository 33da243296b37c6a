module github.com/moneta-cache/moneta/deploy

go 1.26.8

require (
	github.com/bradfitz/gomemcache v0.0.0-20260422231931-4d751bb6e37c
	github.com/moneta-cache/moneta/shared v0.0.0
	gopkg.in/yaml.v3 v3.0.1
)
