package main

import (
	"filippo.io/age"
	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/agekeys"
	"github.com/axarchive/axarchive/internal/s3store"
)

// identityFlag is taken by every command that reads an encrypted archive's records.
func identityFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "identity", Aliases: []string{"i"}, Usage: "decrypt an encrypted archive with the age identity or SSH private key in `FILE` (repeatable)"}
}

func recipientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Usage: "encrypt every chunk with age to `KEY` (age1… or an SSH public key; repeatable)"},
		&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Usage: "encrypt to the recipients listed in `FILE`, one per line (repeatable)"},
	}
}

// identities reads the --identity files; none given is no error (an archive that is not encrypted).
func identities(c *cli.Context) ([]age.Identity, error) {
	files := c.StringSlice("identity")
	if len(files) == 0 {
		return nil, nil
	}
	ids, err := agekeys.Identities(files)
	if err != nil {
		return nil, usageErrorf("--identity: %v", err)
	}
	return ids, nil
}

// archiveReadFlags reads what opening archives takes from the flags: the age identities of encrypted
// archives and the object store options of s3:// ones.
func archiveReadFlags(c *cli.Context) ([]age.Identity, *s3store.Options, error) {
	ids, err := identities(c)
	if err != nil {
		return nil, nil, err
	}
	s3, err := readS3Flags(c)
	if err != nil {
		return nil, nil, err
	}
	return ids, s3, nil
}

func recipients(c *cli.Context) ([]age.Recipient, error) {
	rs, err := agekeys.Recipients(c.StringSlice("recipient"), c.StringSlice("recipients-file"))
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return rs, nil
}
