package soap

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"reflect"
	"strings"
)

// writeElement encodes v, a generated contract type with an XMLName, and
// flushes. Unlike xml.Marshal it writes every scalar field, even a zero
// one: gowsdl tags each field omitempty, but the schema requires
// valid=false, evidenceIndex=0 and the like to be present.
func writeElement(enc *xml.Encoder, v any) error {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	f, ok := rv.Type().FieldByName("XMLName")
	if !ok {
		return fmt.Errorf("soap: %s has no XMLName", rv.Type())
	}
	space, local, _ := strings.Cut(f.Tag.Get("xml"), " ")
	if err := writeStruct(enc, rv, xml.StartElement{Name: xml.Name{Space: space, Local: local}}); err != nil {
		return err
	}
	return enc.Flush()
}

var marshaler = reflect.TypeFor[xml.Marshaler]()

// writeStruct writes the struct rv as the element start.
func writeStruct(enc *xml.Encoder, rv reflect.Value, start xml.StartElement) error {
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "XMLName" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("xml"), ",")
		if err := writeField(enc, rv.Field(i), xml.StartElement{Name: xml.Name{Local: name}}); err != nil {
			return err
		}
	}
	return enc.EncodeToken(start.End())
}

func writeField(enc *xml.Encoder, fv reflect.Value, start xml.StartElement) error {
	switch {
	case fv.Type().Implements(marshaler):
		return enc.EncodeElement(fv.Interface(), start)
	case fv.Kind() == reflect.Pointer:
		if fv.IsNil() {
			return nil
		}
		return writeField(enc, fv.Elem(), start)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Uint8:
		return enc.EncodeElement(base64.StdEncoding.EncodeToString(fv.Bytes()), start)
	case fv.Kind() == reflect.Slice:
		for i := range fv.Len() {
			if err := writeField(enc, fv.Index(i), start); err != nil {
				return err
			}
		}
		return nil
	case fv.Kind() == reflect.Struct:
		return writeStruct(enc, fv, start)
	}
	return enc.EncodeElement(fv.Interface(), start)
}
