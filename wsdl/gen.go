// Package wsdl holds sealgate's SOAP contract (sealgate.wsdl and
// sealgate.xsd, namespace urn:sealgate:v1) and the Go types gowsdl
// generates from it (sealgate.gen.go: regenerate with go generate, never
// edit by hand). The endpoint in gateway/soap and Go clients use them.
package wsdl

//go:generate go tool gowsdl -o sealgate.gen.go -p wsdl -d .. sealgate.wsdl
