package trigger_test

import (
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// The bodies Spring AMQP's RabbitTemplate.convertAndSend(exchange, key,
// id) sends, written out byte by byte. With the default
// SimpleMessageConverter a Long, Integer or String id is written by
// ObjectOutputStream.writeObject (content_type
// application/x-java-serialized-object); the layout is the Java Object
// Serialization Specification's chapter 6 grammar:
//
//	ac ed 00 05            STREAM_MAGIC, STREAM_VERSION
//	73                     TC_OBJECT
//	72                     TC_CLASSDESC
//	00 0e 6a…67            name: length 14, "java.lang.Long"
//	3b 8b e4 90 cc 8f 23 df   serialVersionUID 4290774380558885855L (Long.java)
//	02                     flags SC_SERIALIZABLE
//	00 01                  one field:
//	4a 00 05 76 61 6c 75 65   'J' (long) named "value"
//	78                     TC_ENDBLOCKDATA (no class annotation)
//	72                     TC_CLASSDESC of the superclass:
//	00 10 6a…72            "java.lang.Number"
//	86 ac 95 1d 0b 94 e0 8b   serialVersionUID -8742448824652078965L (Number.java)
//	02 00 00 78            SC_SERIALIZABLE, no fields, TC_ENDBLOCKDATA
//	70                     TC_NULL: Object, Number's superclass, is not serializable
//	00 00 00 00 00 00 04 57   the value, big-endian: 1111 = 0x457
//
// An Integer is the same with "java.lang.Integer" (length 0x11),
// serialVersionUID 1360826667806852920L (12 e2 a0 a4 f7 81 87 38), field
// type 'I' (49) and a 4-byte value. A String is TC_STRING (74), a 2-byte
// length and its modified UTF-8 bytes (ASCII digits are themselves).
// TestJavaLayoutsMatchObjectOutputStream checks these against a JDK.
const (
	javaLongHead = "aced0005 73 72 000e 6a6176612e6c616e672e4c6f6e67 3b8be490cc8f23df 02 0001 4a 0005 76616c7565 78" +
		" 72 0010 6a6176612e6c616e672e4e756d626572 86ac951d0b94e08b 02 0000 78 70"
	javaIntegerHead = "aced0005 73 72 0011 6a6176612e6c616e672e496e7465676572 12e2a0a4f7818738 02 0001 49 0005 76616c7565 78" +
		" 72 0010 6a6176612e6c616e672e4e756d626572 86ac951d0b94e08b 02 0000 78 70"
	javaStringHead = "aced0005 74"
)

// unhex decodes hex written with spaces between groups.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTriggerSpringBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string // hex, or text if it starts with "text:"
		want int64  // 0: refused
		says string // what the refusal must say
	}{
		// Jackson2JsonMessageConverter: a Long (with __TypeId__
		// java.lang.Long) and a String (__TypeId__ java.lang.String).
		{"jackson Long", "text:1111", 1111, ""},
		{"jackson String", `text:"1111"`, 1111, ""},
		{"jackson String, leading zeros", `text:"0042"`, 42, ""},
		{"jackson String, empty", `text:""`, 0, "1 to 19 digits"},
		{"jackson String, not digits", `text:"11a1"`, 0, "decimal digits"},
		{"jackson String, inner space", `text:" 1111"`, 0, "decimal digits"},
		{"jackson String, escaped digit", `text:"\u0031111"`, 0, "decimal digits"},
		{"jackson String, 20 digits", `text:"12345678901234567890"`, 0, "1 to 19 digits"},
		{"jackson String, unterminated", `text:"1111`, 0, "Jackson2JsonMessageConverter"},
		{"jackson String, negative", `text:"-1"`, 0, "decimal digits"},

		// SimpleMessageConverter.
		{"Long 1111", javaLongHead + " 0000000000000457", 1111, ""},
		{"Long max", javaLongHead + " 7fffffffffffffff", 9223372036854775807, ""},
		{"Integer 1111", javaIntegerHead + " 00000457", 1111, ""},
		{"Integer max", javaIntegerHead + " 7fffffff", 2147483647, ""},
		{"String 1111", javaStringHead + " 0004 31313131", 1111, ""},
		{"String 19 digits", javaStringHead + " 0013 39323233333732303336383534373735383037", 9223372036854775807, ""},

		{"Long 0", javaLongHead + " 0000000000000000", 0, "want a positive one"},
		{"Long -1", javaLongHead + " ffffffffffffffff", 0, "want a positive one"},
		{"Integer -1", javaIntegerHead + " ffffffff", 0, "want a positive one"},
		{"Long, value cut short", javaLongHead + " 00000000000004", 0, "not the value alone"},
		{"Long, a byte after", javaLongHead + " 0000000000000457 00", 0, "not the value alone"},
		{"Integer with a Long's value", javaIntegerHead + " 0000000000000457", 0, "not the value alone"},
		{"Long, other serialVersionUID", strings.Replace(javaLongHead, "3b8be490cc8f23df", "3b8be490cc8f23de", 1) + " 0000000000000457", 0, `of class "java.lang.Long" that is not`},
		{"Long, Number's serialVersionUID changed", strings.Replace(javaLongHead, "86ac951d0b94e08b", "86ac951d0b94e08c", 1) + " 0000000000000457", 0, "not a java.lang.Long"},
		{"Long, flags SC_WRITE_METHOD", strings.Replace(javaLongHead, "3b8be490cc8f23df 02", "3b8be490cc8f23df 03", 1) + " 0000000000000457", 0, "not a java.lang.Long"},
		{"Long, field typed int", strings.Replace(javaLongHead, "0001 4a", "0001 49", 1) + " 0000000000000457", 0, "not a java.lang.Long"},
		{"String, not digits", javaStringHead + " 0004 31316131", 0, "not 1 to 19 decimal digits"},
		{"String, empty", javaStringHead + " 0000", 0, "not 1 to 19 decimal digits"},
		{"String, length beyond the body", javaStringHead + " 0005 31313131", 0, "length does not match"},
		{"String, a byte after", javaStringHead + " 0004 31313131 00", 0, "length does not match"},
		{"String, 20 digits", javaStringHead + " 0014 3132333435363738393031323334353637383930", 0, "not 1 to 19 decimal digits"},
		{"String, no length", javaStringHead + " 00", 0, "length does not match"},
		{"TC_LONGSTRING", "aced0005 7c 0000000000000004 31313131", 0, "SimpleMessageConverter"},
		{"magic alone", "aced0005", 0, "not a java.lang.Long, Integer or String"},
		// A HashMap's head, as SimpleMessageConverter writes a Map: named
		// in the reason, never read further.
		{"HashMap", "aced0005 73 72 0011 6a6176612e7574696c2e486173684d6170 0507dac1c31660d1 03 0002 46 000a 6c6f6164466163746f72", 0, `of class "java.util.HashMap" that is not a java.lang.Long, Integer or String; Spring AMQP's SimpleMessageConverter`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body, ok := strings.CutPrefix(tt.body, "text:")
			b := []byte(body)
			if !ok {
				b = unhex(t, tt.body)
			}
			got, err := trigger.ParseTrigger(b)
			if tt.want != 0 {
				if err != nil || got != tt.want {
					t.Errorf("ParseTrigger(%x) = %d, %v; want %d", b, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, trigger.ErrNotTrigger) || got != 0 {
				t.Fatalf("ParseTrigger(%x) = %d, %v; want 0 and ErrNotTrigger", b, got, err)
			}
			// Every refusal of the body's form says what to send, and
			// how from Spring; a well-formed ID that is not positive is
			// the upstream's data, not its configuration.
			says := []string{tt.says}
			if tt.says != "want a positive one" {
				says = append(says, "Jackson2JsonMessageConverter")
			}
			for _, says := range says {
				if !strings.Contains(err.Error(), says) {
					t.Errorf("ParseTrigger(%x): %q does not say %q", b, err, says)
				}
			}
		})
	}
}

// The layouts written out above are what a JDK's ObjectOutputStream
// writes for 1111L, 1111 and "1111" (skipped where no java is installed).
func TestJavaLayoutsMatchObjectOutputStream(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a JVM")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("no java on PATH")
	}
	t.Parallel()
	src := filepath.Join(t.TempDir(), "Write.java")
	if err := os.WriteFile(src, []byte(`import java.io.*;
public class Write {
  public static void main(String[] args) throws Exception {
    for (Object o : new Object[]{1111L, 1111, "1111"}) {
      ByteArrayOutputStream b = new ByteArrayOutputStream();
      try (ObjectOutputStream out = new ObjectOutputStream(b)) { out.writeObject(o); }
      StringBuilder s = new StringBuilder();
      for (byte x : b.toByteArray()) s.append(String.format("%02x", x));
      System.out.println(s);
    }
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(java, src).Output()
	if err != nil {
		t.Fatalf("java %s: %v", src, err)
	}
	want := []string{
		hex.EncodeToString(unhex(t, javaLongHead+" 0000000000000457")),
		hex.EncodeToString(unhex(t, javaIntegerHead+" 00000457")),
		hex.EncodeToString(unhex(t, javaStringHead+" 0004 31313131")),
	}
	if diff := cmp.Diff(want, strings.Fields(string(out))); diff != "" {
		t.Errorf("ObjectOutputStream's bytes (-written out here +JDK):\n%s", diff)
	}
}
