// A Node.js receiver with the core `http` module; prints `LISTENING <port>` once ready and
// appends one JSON line per POST body to the file named by INTEROP_RECORD.
"use strict";
const fs = require("fs");
const http = require("http");

const record = process.env.INTEROP_RECORD;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    if (req.method === "POST") {
      const line = JSON.stringify({headers: req.headers, body: Buffer.concat(chunks).toString("utf8")});
      fs.appendFileSync(record, line + "\n");
      res.writeHead(200, {"Content-Type": "application/json"});
      res.end('{"ok": true}');
    } else {
      res.end("ready");
    }
  });
});
server.listen(0, "127.0.0.1", () => console.log(`LISTENING ${server.address().port}`));
process.on("SIGTERM", () => process.exit(0));
