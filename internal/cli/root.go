// Package cli implements the weft command line: a cobra root command to
// which each subcommand adds itself from its own file.
//
// Adding a command is one file: write a constructor taking *Env and
// returning a *cobra.Command, and register it in the file's init:
//
//	func init() { register(newStatusCommand) }
//
// Commands write to env.Out and env.Err (never os.Stdout), so tests run
// them in-process with captured output. A command that has already
// reported its failure returns an *ExitError to set the exit status.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// Env holds the streams commands read and write.
type Env struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// commandFactories are the registered subcommands. They are appended to
// only by init functions, before main runs, and read-only afterwards.
var commandFactories []func(*Env) *cobra.Command

// register adds a subcommand constructor; call it from init.
func register(f func(*Env) *cobra.Command) {
	commandFactories = append(commandFactories, f)
}

// NewRoot builds the weft root command with every registered subcommand.
func NewRoot(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "weft",
		Short: "weft: a service mesh that speaks Istio's APIs",
		Long: "weft is the command line of the Weft service mesh.\n" +
			"Weft reads Istio configuration unchanged (networking.istio.io and security.istio.io).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(env.In)
	root.SetOut(env.Out)
	root.SetErr(env.Err)
	var cmds []*cobra.Command
	for _, f := range commandFactories {
		cmds = append(cmds, f(env))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

// ExitError ends a command with an exit status; the command has already
// printed what went wrong.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// usageError marks bad command-line use (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Run executes the command line args (without the program name) and
// returns the exit status: 0 on success, 1 on failure, 2 on bad usage.
func Run(ctx context.Context, env *Env, args []string) int {
	root := NewRoot(env)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + "\nSee '" + c.CommandPath() + " --help'."}
	})
	err := root.ExecuteContext(ctx)
	var exit *ExitError
	var usage *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	case errors.As(err, &usage), strings.HasPrefix(err.Error(), "unknown command"):
		fmt.Fprintf(env.Err, "weft: %v\n", err)
		return 2
	default:
		fmt.Fprintf(env.Err, "weft: %v\n", err)
		return 1
	}
}

// Execute runs weft with the process's arguments and streams and exits.
func Execute() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := Run(ctx, &Env{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
