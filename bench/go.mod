module github.com/moneta-cache/moneta/bench

go 1.26.8
