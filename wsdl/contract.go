package wsdl

import (
	_ "embed"
	"strings"
)

// SchemaFile is the schema's file name, as the WSDL imports it.
const SchemaFile = "sealgate.xsd"

// Schema is sealgate.xsd, the contract's messages.
//
//go:embed sealgate.xsd
var Schema []byte

//go:embed sealgate.wsdl
var contract string

// placeholder is the address sealgate.wsdl is written with.
const placeholder = "http://127.0.0.1:8080/soap"

// Contract returns sealgate.wsdl naming address (the endpoint's URL, e.g.
// https://sealgate.example/soap) as both ports' location, and importing
// the schema from address?xsd=sealgate.xsd, so a client that reads the
// WSDL from the node finds everything there.
func Contract(address string) string {
	s := strings.ReplaceAll(contract, `schemaLocation="`+SchemaFile+`"`, `schemaLocation="`+xmlAttr(address+"?xsd="+SchemaFile)+`"`)
	return strings.ReplaceAll(s, `location="`+placeholder+`"`, `location="`+xmlAttr(address)+`"`)
}

// xmlAttr escapes s for a double-quoted attribute.
func xmlAttr(s string) string {
	return strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `"`, "&quot;").Replace(s)
}
