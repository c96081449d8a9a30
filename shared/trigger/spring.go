package trigger

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// What Spring AMQP sends for RabbitTemplate.convertAndSend(exchange, key,
// id) with its default SimpleMessageConverter: a Long (or Integer, or
// String) id written by java.io.ObjectOutputStream.writeObject, with
// content_type application/x-java-serialized-object. Only those three
// classes are read, byte for byte against their exact stream layout
// (Java Object Serialization Specification, chapter 6, "Object
// Serialization Stream Protocol"); nothing else in a Java stream is
// interpreted, so no class a publisher names is ever looked up or built.
var (
	// javaStream is STREAM_MAGIC 0xACED, STREAM_VERSION 5.
	javaStream = []byte{0xAC, 0xED, 0x00, 0x05}
	// javaLong is a java.lang.Long up to its 8-byte value.
	javaLong = javaBoxed("java.lang.Long", 0x3B8BE490CC8F23DF, 'J')
	// javaInteger is a java.lang.Integer up to its 4-byte value.
	javaInteger = javaBoxed("java.lang.Integer", 0x12E2A0A4F7818738, 'I')
)

// Stream protocol tokens and class descriptor flags used here.
const (
	tcNull          = 0x70
	tcClassDesc     = 0x72
	tcObject        = 0x73
	tcString        = 0x74
	tcEndBlockData  = 0x78
	scSerializable  = 0x02
	numberUID       = 0x86AC951D0B94E08B // java.lang.Number's serialVersionUID (-8742448824652078965L)
	javaStringLimit = 19                 // digits of the largest record ID
)

// javaBoxed is the stream of writeObject(x) for x of class name (Long or
// Integer) before x's value: magic, version; TC_OBJECT; the class
// descriptor (TC_CLASSDESC, name, serialVersionUID, SC_SERIALIZABLE, one
// field of type code typ named "value", TC_ENDBLOCKDATA, then its
// superclass's descriptor: java.lang.Number, no fields, TC_ENDBLOCKDATA,
// and TC_NULL for Number's superclass, Object, which is not
// serializable). The value follows, big-endian; Number has no field data.
func javaBoxed(name string, uid uint64, typ byte) []byte {
	b := append([]byte(nil), javaStream...)
	b = append(b, tcObject)
	b = javaClassDesc(b, name, uid)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len("value")))
	b = append(b, "value"...)
	b = append(b, tcEndBlockData)
	b = javaClassDesc(b, "java.lang.Number", numberUID)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = append(b, tcEndBlockData, tcNull)
	return b
}

// javaClassDesc appends a class descriptor's head: TC_CLASSDESC, the name
// (2-byte length, modified UTF-8), the serialVersionUID and the flags.
func javaClassDesc(b []byte, name string, uid uint64) []byte {
	b = append(b, tcClassDesc)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, uid)
	return append(b, scSerializable)
}

// springHint says what a publisher should send; it ends every refusal of
// a Java-serialized body.
const springHint = "publish the record ID as a java.lang.Long (or Integer, or a String of digits), " +
	"or better configure the RabbitTemplate with Jackson2JsonMessageConverter, which sends a Long as JSON 1111"

// parseJava reads a body that starts with the Java stream magic: the
// record ID as a serialized Long, Integer or String of digits, nothing
// before or after it.
func parseJava(body []byte) (int64, error) {
	var id int64
	switch {
	case bytes.HasPrefix(body, javaLong) && len(body) == len(javaLong)+8:
		id = int64(binary.BigEndian.Uint64(body[len(javaLong):]))
	case bytes.HasPrefix(body, javaInteger) && len(body) == len(javaInteger)+4:
		id = int64(int32(binary.BigEndian.Uint32(body[len(javaInteger):])))
	case len(body) > len(javaStream) && body[len(javaStream)] == tcString:
		// TC_STRING, a 2-byte length, that many bytes of modified UTF-8:
		// only ASCII digits are accepted, whose encoding is themselves.
		s := body[len(javaStream)+1:]
		if len(s) < 2 || int(binary.BigEndian.Uint16(s)) != len(s)-2 {
			return 0, fmt.Errorf("%w: a Java-serialized String whose length does not match the body; %s", ErrNotTrigger, springHint)
		}
		s = s[2:]
		if len(s) == 0 || len(s) > javaStringLimit || !allDigits(s) {
			return 0, fmt.Errorf("%w: a Java-serialized String that is not 1 to 19 decimal digits; %s", ErrNotTrigger, springHint)
		}
		return parseDigits(s)
	case bytes.HasPrefix(body, javaLong), bytes.HasPrefix(body, javaInteger):
		return 0, fmt.Errorf("%w: a Java-serialized Long or Integer followed by %d bytes, not the value alone; %s", ErrNotTrigger, len(body)-len(javaInteger), springHint)
	default:
		return 0, fmt.Errorf("%w: a Java-serialized object (content_type application/x-java-serialized-object)%s that is not a java.lang.Long, Integer or String; "+
			"Spring AMQP's SimpleMessageConverter serializes whatever convertAndSend is given: %s", ErrNotTrigger, javaClassName(body), springHint)
	}
	if id <= 0 {
		return 0, fmt.Errorf("%w: a Java-serialized record ID %d; want a positive one", ErrNotTrigger, id)
	}
	return id, nil
}

// javaClassName names the class of a serialized object, for the park
// reason, if the stream starts with one whose name is short printable
// ASCII: " of class \"java.util.HashMap\"".
func javaClassName(body []byte) string {
	head := len(javaStream) + 2
	if len(body) < head+2 || body[len(javaStream)] != tcObject || body[len(javaStream)+1] != tcClassDesc {
		return ""
	}
	n := int(binary.BigEndian.Uint16(body[head:]))
	name := body[head+2:]
	if n == 0 || n > 100 || len(name) < n {
		return ""
	}
	for _, c := range name[:n] {
		if c < 0x21 || c > 0x7E {
			return ""
		}
	}
	return fmt.Sprintf(" of class %q", name[:n])
}
