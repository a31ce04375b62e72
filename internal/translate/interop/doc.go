// Package interop holds tests only: they check that the configuration
// package translate generates is accepted by its real consumers, the
// weft-proxy compilers and grpc-go's xDS client (through the xDS server).
// They live apart so that translate's own tests do not depend on those
// packages.
package interop
