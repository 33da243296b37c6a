module github.com/moneta-cache/moneta/client

go 1.26.8
