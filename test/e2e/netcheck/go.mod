module sextant.dev/e2e/netcheck

go 1.24
