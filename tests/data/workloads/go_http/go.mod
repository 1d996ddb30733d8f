module agentaudit.test/gohttp

go 1.19
