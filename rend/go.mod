module github.com/moneta-cache/moneta/rend

go 1.26.8
