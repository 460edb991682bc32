package main

import (
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is the program's version, set at build time:
//
//	go build -ldflags "-X main.version=v0.1.0" ./cmd/axarchive
var version = "v0.1.0-dev"

// commands is the command list, in the order of the help text.
func commands() []*cli.Command {
	return []*cli.Command{
		exportCommand(),
		importCommand(),
		verifyCommand(),
		inspectCommand(),
		catCommand(),
		diffCommand(),
		segmentsCommand(),
		tokensCommand(),
		signCommand(),
	}
}

const exitStatusHelp = `Exit status:
   0    success
   1    error (I/O, server, bad input)
   2    usage error (flags or arguments)
   3    the input (archive or segment files) is invalid, damaged or incomplete
   4    a target or live context differs from the archive (import, diff); tokens
        inconsistent with the event store (tokens check)
   130  interrupted; an export is resumable, an import says how far it got
Treat any other status as failure.`

// newApp builds the command line. Output goes to stdout and stderr only; the caller maps the returned
// error to an exit status (exitCode) and prints it (printError): urfave/cli never exits by itself.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:            "axarchive",
		Usage:           "export an Axon Server event store to a verifiable archive, and back",
		Version:         version,
		Description:     "Archives are described in SPEC.md (format axarchive, version 1). axarchive help COMMAND shows a\ncommand's flags; axarchive version prints the version.\n\n" + exitStatusHelp,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// urfave's default handler calls os.Exit from inside Run for errors with an exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error()}
		},
		Commands: commands(),
		Action: func(c *cli.Context) error {
			// `axarchive help [COMMAND]` and `axarchive version`, as users type them: the same as
			// --help and --version (the help command urfave adds to every command stays hidden).
			switch c.Args().First() {
			case "help":
				if name := c.Args().Get(1); name != "" {
					if c.App.Command(name) == nil {
						return &usageError{msg: "unknown command " + quote(name), hint: "run axarchive help for the commands"}
					}
					return cli.ShowCommandHelp(c, name)
				}
				return cli.ShowAppHelp(c)
			case "version":
				cli.ShowVersion(c)
				return nil
			}
			if c.NArg() > 0 {
				return &usageError{msg: "unknown command " + quote(c.Args().First()), hint: "run axarchive --help for the commands"}
			}
			cli.ShowAppHelp(c)
			return &usageError{msg: "no command given"}
		},
	}
	for _, cmd := range app.Commands {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
				return &usageError{msg: err.Error(), hint: "run axarchive " + c.Command.Name + " --help for its flags"}
			}
		}
		cmd.HideHelpCommand = true
	}
	return app
}

// interspersed moves the flags that follow a command's arguments before them, so that
// `axarchive verify DIR --quick` means `axarchive verify --quick DIR`: urfave/cli v2 stops parsing flags at
// the first argument. A flag that takes a value takes the next word unless written --flag=value; after
// "--" everything is an argument. Words that are no flag of the command are left where they are, for
// the command to refuse.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		i++ // the application's own flags (--help, --version) come before the command
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args
	}
	// A command with subcommands (tokens list, …): the flags belong to the subcommand.
	for len(cmd.Subcommands) > 0 && i+1 < len(args) {
		sub := cmd.Command(args[i+1])
		if sub == nil {
			return args
		}
		cmd, i = sub, i+1
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		v := true
		if d, ok := f.(cli.DocGenerationFlag); ok {
			v = d.TakesValue()
		}
		for _, name := range f.Names() {
			takesValue[name] = v
		}
	}
	out := append([]string(nil), args[:i+1]...)
	var positional []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			positional = append(positional, rest[j:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		v, known := takesValue[name]
		if !strings.HasPrefix(a, "-") || a == "-" || !known {
			positional = append(positional, a)
			continue
		}
		out = append(out, a)
		if v && !hasValue && j+1 < len(rest) {
			j++
			out = append(out, rest[j])
		}
	}
	return append(out, positional...)
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// archiveArgs returns the positional arguments of a command that takes between min and max of them
// (max < 0: no limit). interspersed has moved the command's flags before them, so a word that still looks
// like a flag is none of the command's: refuse it rather than take it for a path.
func archiveArgs(c *cli.Context, min, max int) ([]string, error) {
	args := c.Args().Slice()
	for _, a := range args {
		if strings.HasPrefix(a, "-") && a != "-" {
			return nil, &usageError{msg: "unknown flag " + quote(a), hint: "run axarchive " + c.Command.Name + " --help for its flags (a path that starts with - can be written ./" + a + ")"}
		}
	}
	usage := "usage: axarchive " + c.Command.Name + " [flags] " + c.Command.ArgsUsage
	switch {
	case len(args) < min:
		return nil, &usageError{msg: "missing archive path", hint: usage}
	case max >= 0 && len(args) > max:
		return nil, &usageError{msg: "too many arguments: " + strings.Join(args[max:], " "), hint: usage}
	}
	return args, nil
}

// noArgs refuses positional arguments.
func noArgs(c *cli.Context) error {
	_, err := archiveArgs(c, 0, 0)
	return err
}
