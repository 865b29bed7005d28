"""The raw-socket HTTP call shared by the bench's floor extensions (written out as scripts).

The floors must be the least a Python extension can do, so they use ``socket`` directly; both
scripts embed this one definition of ``call`` rather than each carrying a copy.
"""

CALL_SNIPPET = r'''
def call(method, path, headers, body=b""):
    sock = socket.create_connection((host, int(port)))
    head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        method, path, api, len(body))
    head += "".join("%s: %s\r\n" % item for item in headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1") + body)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)
'''
