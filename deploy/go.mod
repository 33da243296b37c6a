module github.com/moneta-cache/moneta/deploy

go 1.26.8
