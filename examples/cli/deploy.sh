#!/usr/bin/env bash
# Deploy lambda-logs-http with the AWS CLI: publish the layer, store the receiver's token in
# Secrets Manager, create an execution role allowed to read it, and attach the layer to a Python
# function that reads the token from the secret. Safe to run again (it updates what exists).
#
#   make build_local                                   # dist/lambda-logs-http.zip
#   export REGION=eu-west-1 INGEST_URL=https://logs.example.com/ingest
#   read -rs INGEST_TOKEN && export INGEST_TOKEN        # kept out of the shell history
#   bash examples/cli/deploy.sh
#
# Optional: FUNCTION_NAME (lambda-logs-http-example), LAYER_NAME (lambda-logs-http),
# SECRET_NAME (lambda-logs-http/ingest-token), RUNTIME (python3.12), ARCH (x86_64 | arm64),
# LAYER_ZIP (dist/lambda-logs-http.zip). Needs the AWS CLI (v1 or v2) with credentials allowed to
# manage Lambda, IAM roles and Secrets Manager secrets.
set -euo pipefail

: "${REGION:?set REGION, e.g. eu-west-1}"
: "${INGEST_URL:?set INGEST_URL, the URL that receives the logs}"
: "${INGEST_TOKEN:?set INGEST_TOKEN, the bearer token of the receiver (read -rs INGEST_TOKEN)}"
FUNCTION_NAME=${FUNCTION_NAME:-lambda-logs-http-example}
LAYER_NAME=${LAYER_NAME:-lambda-logs-http}
SECRET_NAME=${SECRET_NAME:-lambda-logs-http/ingest-token}
RUNTIME=${RUNTIME:-python3.12}
ARCH=${ARCH:-x86_64}
HERE=$(cd "$(dirname "$0")" && pwd)
LAYER_ZIP=${LAYER_ZIP:-$HERE/../../dist/lambda-logs-http.zip}
ROLE_NAME="$FUNCTION_NAME-role"
aws() { command aws --region "$REGION" --output text "$@"; }

[ -f "$LAYER_ZIP" ] || { echo "no $LAYER_ZIP: run make build_local first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The layer (a new version each run).
layer_arn=$(aws lambda publish-layer-version --layer-name "$LAYER_NAME" \
  --description "lambda-logs-http: forwards function logs to an HTTP endpoint" \
  --compatible-architectures "$ARCH" \
  --compatible-runtimes python3.9 python3.10 python3.11 python3.12 python3.13 python3.14 \
  --zip-file "fileb://$LAYER_ZIP" --query LayerVersionArn)
echo "layer:    $layer_arn"

# 2. The token, in Secrets Manager (from a file, so it is never a command-line argument).
umask 077
printf '%s' "$INGEST_TOKEN" > "$work/token"
if secret_arn=$(aws secretsmanager describe-secret --secret-id "$SECRET_NAME" --query ARN 2>/dev/null); then
  aws secretsmanager put-secret-value --secret-id "$secret_arn" \
    --secret-string "file://$work/token" > /dev/null
else
  secret_arn=$(aws secretsmanager create-secret --name "$SECRET_NAME" \
    --description "bearer token of the log receiver (lambda-logs-http)" \
    --secret-string "file://$work/token" --query ARN)
fi
rm -f "$work/token"
echo "secret:   $secret_arn"

# 3. The execution role: CloudWatch Logs, and GetSecretValue on this one secret only.
cat > "$work/trust.json" <<'JSON'
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
JSON
cat > "$work/read-secret.json" <<JSON
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Action": "secretsmanager:GetSecretValue", "Resource": "$secret_arn"}]}
JSON
role_arn=$(aws iam get-role --role-name "$ROLE_NAME" --query Role.Arn 2>/dev/null) ||
  role_arn=$(aws iam create-role --role-name "$ROLE_NAME" \
    --assume-role-policy-document "file://$work/trust.json" --query Role.Arn)
aws iam attach-role-policy --role-name "$ROLE_NAME" \
  --policy-arn arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole
aws iam put-role-policy --role-name "$ROLE_NAME" --policy-name read-ingest-token \
  --policy-document "file://$work/read-secret.json"
echo "role:     $role_arn"

# 4. The function, with the layer and the settings (the token itself never appears here).
cp "$HERE/../function/app.py" "$work/app.py"
(cd "$work" && python3 -c 'import zipfile; z = zipfile.ZipFile("function.zip", "w"); z.write("app.py"); z.close()')
SECRET_ARN=$secret_arn python3 -c '
import json, os, sys
json.dump({"Variables": {"HTTP_ENDPOINT": os.environ["INGEST_URL"], "HTTP_AUTH_TYPE": "bearer",
                         "HTTP_AUTH_CREDENTIALS_SECRET_ARN": os.environ["SECRET_ARN"]}},
          open(sys.argv[1], "w"))' "$work/environment.json"
if aws lambda get-function --function-name "$FUNCTION_NAME" --query Configuration.FunctionArn >/dev/null 2>&1; then
  aws lambda update-function-code --function-name "$FUNCTION_NAME" \
    --zip-file "fileb://$work/function.zip" > /dev/null
  aws lambda wait function-updated --function-name "$FUNCTION_NAME"
  aws lambda update-function-configuration --function-name "$FUNCTION_NAME" \
    --runtime "$RUNTIME" --handler app.handler --role "$role_arn" --layers "$layer_arn" \
    --environment "file://$work/environment.json" > /dev/null
else
  # A role created a moment ago may not be assumable by Lambda yet: try again for a minute.
  for attempt in $(seq 1 20); do
    if out=$(aws lambda create-function --function-name "$FUNCTION_NAME" --runtime "$RUNTIME" \
        --architectures "$ARCH" --handler app.handler --role "$role_arn" \
        --zip-file "fileb://$work/function.zip" --layers "$layer_arn" --timeout 10 \
        --environment "file://$work/environment.json" 2>&1 >/dev/null); then
      break
    fi
    if [ "$attempt" = 20 ] || ! grep -q "cannot be assumed" <<<"$out"; then
      echo "$out" >&2; exit 1
    fi
    sleep 3
  done
fi
echo "function: $FUNCTION_NAME (try it: aws lambda invoke --function-name $FUNCTION_NAME out.json)"
