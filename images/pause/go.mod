module marina.local/pause

go 1.24
