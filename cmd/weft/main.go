// Command weft is the Weft service mesh command line; see package
// internal/cli for its commands.
package main

import "github.com/weftmesh/weft/internal/cli"

func main() { cli.Execute() }
