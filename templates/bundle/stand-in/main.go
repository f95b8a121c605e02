// A STAND-IN server for images that cannot be built here. It ignores its arguments (the real
// image's flags, which the manifests pass) and answers 200 on every path, on the HTTP ports in
// $STAND_IN_HTTP_PORTS and the HTTPS ports (self-signed) in $STAND_IN_HTTPS_PORTS, with a body
// that says it is a stand-in. Written by openi-tasks.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"
)

func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Openi-Stand-In", name)
		fmt.Fprintf(w, "openi-tasks STAND-IN for %s (not the real %s): %s %s\n", name, name, r.Method, r.URL.Path)
	})
}

func selfSigned(name string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	template := x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name + " stand-in"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func ports(variable string) []string {
	var found []string
	for _, port := range strings.Fields(strings.ReplaceAll(os.Getenv(variable), ",", " ")) {
		found = append(found, port)
	}
	return found
}

func main() {
	name := os.Getenv("STAND_IN_NAME")
	if name == "" {
		name = "an image"
	}
	done := make(chan error)
	for _, port := range ports("STAND_IN_HTTP_PORTS") {
		server := &http.Server{Addr: ":" + port, Handler: handler(name)}
		go func() { done <- server.ListenAndServe() }()
		log.Printf("stand-in for %s: HTTP on :%s", name, port)
	}
	for _, port := range ports("STAND_IN_HTTPS_PORTS") {
		server := &http.Server{Addr: ":" + port, Handler: handler(name),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned(name)}}}
		go func() { done <- server.ListenAndServeTLS("", "") }()
		log.Printf("stand-in for %s: HTTPS on :%s", name, port)
	}
	log.Fatal(<-done)
}
