package main

import (
	"bytes"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/sshsig"
)

func signKeyFlag() cli.Flag {
	return &cli.StringFlag{Name: "sign-key", Usage: "sign the archive with the OpenSSH private key `FILE` (a passphrase-protected key through ssh-agent); check with ssh-keygen -Y verify -n axarchive or axarchive verify --allowed-signers"}
}

func allowedSignersFlag() cli.Flag {
	return &cli.StringFlag{Name: "allowed-signers", Usage: "require a valid signature by a key in the OpenSSH allowed_signers `FILE`"}
}

// signFunc loads the signing key at once, so that an unusable key stops a command before it does any work.
func signFunc(keyPath string) (archive.SignFunc, error) {
	signer, err := sshsig.LoadSigner(keyPath)
	if err != nil {
		return nil, fmt.Errorf("--sign-key: %w", err)
	}
	return func(message []byte) ([]byte, error) {
		return sshsig.Sign(signer, archive.SignatureNamespace, bytes.NewReader(message))
	}, nil
}

func signCommand() *cli.Command {
	return &cli.Command{
		Name:      "sign",
		Usage:     "sign a complete archive (or sign it again with another key)",
		ArgsUsage: "DIR",
		Description: `axarchive sign --sign-key ~/.ssh/id_ed25519 DIR

Writes DIR/tagmanifest-sha256.txt.sig, an OpenSSH signature (namespace "axarchive") of the tag
manifest, which covers every file's checksum. Nothing else in the archive changes. Check it with
axarchive verify --allowed-signers FILE DIR, or with stock OpenSSH:
  ssh-keygen -Y verify -f allowed_signers -I SIGNER -n axarchive -s DIR/tagmanifest-sha256.txt.sig < DIR/tagmanifest-sha256.txt

Exit status: 0 signed, 1 error, 2 usage, 3 not a complete archive.`,
		Flags: append([]cli.Flag{signKeyFlag()}, s3Flags()...),
		Action: func(c *cli.Context) error {
			dirs, err := archiveArgs(c, 1, 1)
			if err != nil {
				return err
			}
			if c.String("sign-key") == "" {
				return usageErrorf("--sign-key FILE is required")
			}
			sign, err := signFunc(c.String("sign-key"))
			if err != nil {
				return err
			}
			s3, err := readS3Flags(c)
			if err != nil {
				return err
			}
			a, err := location.Open(c.Context, dirs[0], s3)
			if err != nil {
				return err
			}
			if err := a.Sign(sign); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "signed %s: %s\n", dirs[0], archive.SignatureFile)
			return nil
		},
	}
}

// checkSignature proves an archive's signature against the allowed signers and returns who signed.
func checkSignature(a *archive.Archive, signers []sshsig.AllowedSigner) (sshsig.Signed, error) {
	tags, sig, err := a.Signature()
	if err != nil {
		return sshsig.Signed{}, err
	}
	signed, err := sshsig.VerifyMessage(tags, sig, archive.SignatureNamespace, signers, time.Now())
	if err != nil {
		return sshsig.Signed{}, fmt.Errorf("%s/%s: %w", a.Dir(), archive.SignatureFile, err)
	}
	return signed, nil
}
