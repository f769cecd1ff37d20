module marina.local/kind-runtime

go 1.24
