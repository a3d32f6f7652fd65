"""A minimal OTLP/HTTP logs receiver for the tests: decodes each POST body
with the official OpenTelemetry protobuf definitions (PyPI
opentelemetry-proto) and appends one JSON line per request to a file.

usage: otlp_receiver.py OUT_FILE   (prints "port N" once listening)
"""
import http.server
import json
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

OUT = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        request = logs_service_pb2.ExportLogsServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # a malformed request is the test's failure
            self.send_response(400)
            self.end_headers()
            with open(OUT, "a") as f:
                f.write(json.dumps({"error": str(e)}) + "\n")
            return
        with open(OUT, "a") as f:
            f.write(json.dumps({
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "request": MessageToDict(request),
            }) + "\n")
        response = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(response)))
        self.end_headers()
        self.wfile.write(response)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
