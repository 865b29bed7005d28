"""Payloads and answers as the vendors document them, written out as test data.

Each constant names the page it was written from. They are the receivers' own examples, so a
test that reads our body the way the example is read (or reads the example the way our code
reads an answer) checks our output against the documented contract, not against itself.
"""

from __future__ import annotations

# -- Elasticsearch ----------------------------------------------------------------------------

# Elasticsearch reference, "Bulk API" (docs-bulk), the request example: NDJSON, an action line
# then (for index/create) the source on the next line, the last line ending with a newline.
# https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html
ES_BULK_REQUEST = (
    b'{ "index" : { "_index" : "test", "_id" : "1" } }\n'
    b'{ "field1" : "value1" }\n'
    b'{ "delete" : { "_index" : "test", "_id" : "2" } }\n'
    b'{ "create" : { "_index" : "test", "_id" : "3" } }\n'
    b'{ "field1" : "value3" }\n'
    b'{ "update" : {"_id" : "1", "_index" : "test"} }\n'
    b'{ "doc" : {"field2" : "value2"} }\n'
)

# The same page, "Example with failed actions": two updates of missing documents fail (404),
# the create succeeds; the answer is 200 with "errors": true and one item per action, in order.
ES_BULK_PARTIAL_FAILURE = b"""{
  "took": 486,
  "errors": true,
  "items": [
    {
      "update": {
        "_index": "index1",
        "_id": "5",
        "status": 404,
        "error": {
          "type": "document_missing_exception",
          "reason": "[5]: document missing",
          "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA",
          "shard": "0",
          "index": "index1"
        }
      }
    },
    {
      "update": {
        "_index": "index1",
        "_id": "6",
        "status": 404,
        "error": {
          "type": "document_missing_exception",
          "reason": "[6]: document missing",
          "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA",
          "shard": "0",
          "index": "index1"
        }
      }
    },
    {
      "create": {
        "_index": "index1",
        "_id": "7",
        "_version": 1,
        "result": "created",
        "_shards": {
          "total": 2,
          "successful": 1,
          "failed": 0
        },
        "_seq_no": 0,
        "_primary_term": 1,
        "status": 201
      }
    }
  ]
}"""

# The same page, "Bulk API response body": each item's "status" and, on failure, "error" with
# its "type" and "reason"; 429 is what a full write queue answers for an item
# (es_rejected_execution_exception, "Elasticsearch rejected the request"). The answer our
# filter_path asks for keeps exactly those: errors, items.*.status, items.*.error.type/reason
# (filter_path: "Common options", https://www.elastic.co/guide/en/elasticsearch/reference/
# current/common-options.html#common-options-response-filtering).
ES_BULK_FILTERED_MIXED = (
    b'{"errors":true,"items":['
    b'{"create":{"status":201}},'
    b'{"create":{"status":429,"error":{"type":"es_rejected_execution_exception",'
    b'"reason":"rejected execution of coordinating operation"}}},'
    b'{"create":{"status":400,"error":{"type":"document_parsing_exception",'
    b'"reason":"[1:150] failed to parse field [record.count] of type [long]"}}},'
    b'{"create":{"status":503,"error":{"type":"unavailable_shards_exception",'
    b'"reason":"primary shard is not active"}}},'
    b'{"create":{"status":201}}]}'
)

# An error answer for the whole request, as Elasticsearch writes them ("error" with "type",
# "reason", "root_cause"; "status"): here the one a create without an index gets.
ES_INDEX_MISSING = (
    b'{"error":{"root_cause":[{"type":"action_request_validation_exception",'
    b'"reason":"Validation Failed: 1: index is missing;"}],'
    b'"type":"action_request_validation_exception",'
    b'"reason":"Validation Failed: 1: index is missing;"},"status":400}'
)

# -- Splunk HTTP Event Collector --------------------------------------------------------------

# Splunk docs, "Format events for HTTP Event Collector" ("Event metadata", "Event data",
# "Batch data"): an event's metadata keys (time in epoch seconds, host, source, sourcetype,
# index), the event as a string or an object, indexed "fields" as a flat object, and several
# events in one request as JSON objects one after the other.
# https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/format-events-for-http-event-collector
HEC_EVENT_WITH_METADATA = b"""{
    "time": 1426279439,
    "host": "localhost",
    "source": "random-data-generator",
    "sourcetype": "my_sample_data",
    "index": "main",
    "event": "Hello world!"
}"""
HEC_EVENT_WITH_FIELDS = b"""{
  "time": 1437522387,
  "host": "dataserver992.example.com",
  "source": "testapp",
  "event": {
    "message": "Something happened",
    "severity": "INFO"
  },
  "fields": {
    "region": "us-west-1",
    "datacenter": "us-west-1a",
    "rack": "63",
    "os": "Ubuntu16.10",
    "arch": "x64",
    "team": "NY",
    "service": "6",
    "service_version": "0",
    "service_environment": "test",
    "path": "/dev/sda1",
    "fstype": "ext3"
  }
}"""
HEC_BATCH = (
    b'{"event": "Pony 1 has left the barn"}{"event": "Pony 2 has left the barn"}'
    b'{"event": "Pony 3 has left the barn", "nested": {"key1": "value1"}}'
)
# Splunk docs, "Troubleshoot HTTP Event Collector" ("Possible error codes"): an error answer is
# {"text": ..., "code": N}; an event it could not read is also numbered.
HEC_INVALID_TOKEN = b'{"text":"Invalid token","code":4}'
HEC_INVALID_DATA = b'{"text":"Invalid data format","code":6,"invalid-event-number":2}'
HEC_SUCCESS = b'{"text":"Success","code":0}'

# -- Datadog logs intake ----------------------------------------------------------------------

# Datadog API reference, "Send logs" (v2, POST /api/v2/logs): the request body example (an
# array of logs with the reserved attributes ddsource, ddtags, hostname, message, service),
# the limits (5MB uncompressed per payload, 1MB per log, 1000 entries per array) and the status
# codes (202 accepted; 400, 401, 403, 408, 413, 429, 500, 503).
# https://docs.datadoghq.com/api/latest/logs/send-logs/
DD_LOGS_REQUEST = b"""[
  {
    "ddsource": "nginx",
    "ddtags": "env:staging,version:5.1",
    "hostname": "i-012345678",
    "message": "2019-11-19T14:37:58,995 INFO [process.name][20081] Hello World",
    "service": "payment"
  }
]"""
DD_ACCEPTED = b"{}"
DD_MAX_PAYLOAD_BYTES = 5_000_000
DD_MAX_LOG_BYTES = 1_000_000
DD_MAX_ENTRIES = 1000
# An error answer in the shape of Datadog's API errors ({"errors": [...]}, JSON:API objects
# with status, title, detail), written here for a 403.
DD_FORBIDDEN = b'{"errors":[{"status":"403","title":"Forbidden","detail":"API key is invalid"}]}'
