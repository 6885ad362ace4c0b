package hvsock

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/govmbus/govmbus/protocol"
)

// ErrSyntax is the error of a service or route that does not parse.
var ErrSyntax = errors.New("hvsock: bad syntax")

// ParseService reads a service id as a GUID or as an AF_VSOCK port
// number (ServiceForPort), the two ways Linux tools name one.
func ParseService(s string) (protocol.GUID, error) {
	if port, err := strconv.ParseUint(s, 10, 32); err == nil {
		return ServiceForPort(uint32(port)), nil
	}
	g, err := protocol.ParseGUID(s)
	if err != nil {
		return protocol.GUID{}, fmt.Errorf("%w: service %q is neither a GUID nor a port number", ErrSyntax, s)
	}
	return g, nil
}

// Route names a local socket a service is relayed to: Network is "unix"
// or "tcp", Address its path or host:port, as package net's Dial takes
// them.
type Route struct {
	Service protocol.GUID
	Network string
	Address string
}

// String is the route as ParseRoute reads it.
func (r Route) String() string { return r.Service.String() + "=" + r.Network + ":" + r.Address }

// ParseRoute reads SERVICE=unix:PATH or SERVICE=tcp:ADDR, SERVICE as
// ParseService reads it.
func ParseRoute(s string) (Route, error) {
	svc, target, ok := strings.Cut(s, "=")
	if !ok {
		return Route{}, fmt.Errorf("%w: route %q is not SERVICE=unix:PATH or SERVICE=tcp:ADDR", ErrSyntax, s)
	}
	id, err := ParseService(svc)
	if err != nil {
		return Route{}, err
	}
	network, addr, err := parseTarget(target)
	if err != nil {
		return Route{}, err
	}
	return Route{Service: id, Network: network, Address: addr}, nil
}

// parseTarget reads unix:PATH or tcp:ADDR.
func parseTarget(s string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok || addr == "" || (network != "unix" && network != "tcp") {
		return "", "", fmt.Errorf("%w: local socket %q is not unix:PATH or tcp:ADDR", ErrSyntax, s)
	}
	return network, addr, nil
}

// ParseRoutes reads each value with ParseRoute.
func ParseRoutes(values []string) ([]Route, error) {
	routes := make([]Route, 0, len(values))
	for _, v := range values {
		r, err := ParseRoute(v)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return routes, nil
}
