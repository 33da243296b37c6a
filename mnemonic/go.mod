module github.com/moneta-cache/moneta/mnemonic

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/linxGnu/grocksdb v1.7.14
)
