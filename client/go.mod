module github.com/moneta-cache/moneta/client

go 1.26.8

require github.com/moneta-cache/moneta/shared v0.0.0
