// Generates requests-go.json: run it in GOPATH mode next to go-ethereum v1.9.7
// (GOPATH=/tmp/gopath, the tree geth is built from):
//   mkdir -p $GOPATH/src/msvec && cp gen.go $GOPATH/src/msvec/main.go
//   cd $GOPATH/src/msvec && GO111MODULE=off go run . > requests-go.json

// Prints mailserver request payloads as go-ethereum's rlp encodes status-go v0.78's
// MessagesRequestPayload (same field order and types), and the older 6-field form.
package main

import (
	"encoding/hex"
	"encoding/json"
	"os"

	"github.com/ethereum/go-ethereum/rlp"
)

type payloadV078 struct {
	Lower  uint32
	Upper  uint32
	Bloom  []byte
	Topics [][]byte
	Limit  uint32
	Cursor []byte
	Batch  bool
}

type payloadNoTopics struct {
	Lower  uint32
	Upper  uint32
	Bloom  []byte
	Limit  uint32
	Cursor []byte
	Batch  bool
}

func bloom(seed byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = seed ^ byte(i*7)
	}
	return b
}

func cursor() []byte {
	c := make([]byte, 36)
	for i := range c {
		c[i] = byte(i + 1)
	}
	return c
}

type vec struct {
	Name    string   `json:"name"`
	Lower   uint32   `json:"lower"`
	Upper   uint32   `json:"upper"`
	Bloom   string   `json:"bloom"`
	Topics  []string `json:"topics"`
	Limit   uint32   `json:"limit"`
	Cursor  string   `json:"cursor"`
	Batch   bool     `json:"batch"`
	Payload string   `json:"payload"`
}

func main() {
	var out []vec
	add := func(name string, p payloadV078, withTopics bool) {
		var enc []byte
		var err error
		if withTopics {
			enc, err = rlp.EncodeToBytes(p)
		} else {
			enc, err = rlp.EncodeToBytes(payloadNoTopics{p.Lower, p.Upper, p.Bloom, p.Limit, p.Cursor, p.Batch})
		}
		if err != nil {
			panic(err)
		}
		topics := []string{}
		for _, t := range p.Topics {
			topics = append(topics, hex.EncodeToString(t))
		}
		out = append(out, vec{name, p.Lower, p.Upper, hex.EncodeToString(p.Bloom), topics, p.Limit, hex.EncodeToString(p.Cursor), p.Batch, hex.EncodeToString(enc)})
	}
	add("v078 one topic", payloadV078{1700000000, 1700086400, bloom(1), [][]byte{{0xf8, 0x94, 0x6a, 0xac}}, 100, nil, true}, true)
	add("v078 two topics with cursor", payloadV078{0, 4294967295, bloom(2), [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}, 1000, cursor(), true}, true)
	add("v078 no topics, zero upper and limit", payloadV078{127, 0, bloom(3), nil, 0, nil, false}, true)
	add("2019 without topics (murmur)", payloadV078{1550000000, 1550003600, bloom(4), nil, 50, nil, true}, false)
	add("2019 without topics with cursor", payloadV078{128, 256, bloom(5), nil, 1, cursor(), false}, false)
	e := json.NewEncoder(os.Stdout)
	e.SetIndent("", "  ")
	if err := e.Encode(out); err != nil {
		panic(err)
	}
}
