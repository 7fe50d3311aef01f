module github.com/sluice-mail/sluice

go 1.24
