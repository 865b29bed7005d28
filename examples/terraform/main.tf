# lambda-logs-http with Terraform: the layer, the receiver's token in Secrets Manager, and a
# Python function that reads the token from the secret (its role may read that one secret only).
#
#   make build_local                         # dist/lambda-logs-http.zip
#   cd examples/terraform
#   terraform init
#   terraform apply -var region=eu-west-1 -var ingest_url=https://logs.example.com/ingest
#                                            # asks for ingest_token (sensitive, not echoed)
#
# The token ends up in the secret (and in Terraform's state: keep the state private); the
# function's configuration holds only the secret's ARN.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}

variable "region" {
  type        = string
  description = "The AWS region to deploy to"
}

variable "ingest_url" {
  type        = string
  description = "The URL that receives the logs"
}

variable "ingest_token" {
  type        = string
  description = "The receiver's bearer token, stored in Secrets Manager"
  sensitive   = true
}

variable "function_name" {
  type    = string
  default = "lambda-logs-http-example"
}

provider "aws" {
  region = var.region
}

resource "aws_lambda_layer_version" "logs" {
  layer_name               = "lambda-logs-http"
  description              = "Forwards function logs to an HTTP endpoint"
  filename                 = "${path.module}/../../dist/lambda-logs-http.zip"
  source_code_hash         = filebase64sha256("${path.module}/../../dist/lambda-logs-http.zip")
  compatible_architectures = ["x86_64", "arm64"]
  compatible_runtimes      = ["python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14"]
  license_info             = "MIT"
}

resource "aws_secretsmanager_secret" "ingest_token" {
  name        = "${var.function_name}/ingest-token"
  description = "Bearer token of the log receiver (lambda-logs-http)"
}

resource "aws_secretsmanager_secret_version" "ingest_token" {
  secret_id     = aws_secretsmanager_secret.ingest_token.id
  secret_string = var.ingest_token
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "${var.function_name}-role"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy_attachment" "logs" {
  role       = aws_iam_role.function.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

# secretsmanager:GetSecretValue on this secret only.
data "aws_iam_policy_document" "read_token" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.ingest_token.arn]
  }
}

resource "aws_iam_role_policy" "read_token" {
  name   = "read-ingest-token"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.read_token.json
}

data "archive_file" "function" {
  type        = "zip"
  source_file = "${path.module}/../function/app.py"
  output_path = "${path.module}/function.zip"
}

resource "aws_lambda_function" "function" {
  function_name    = var.function_name
  role             = aws_iam_role.function.arn
  runtime          = "python3.12"
  architectures    = ["x86_64"]
  handler          = "app.handler"
  filename         = data.archive_file.function.output_path
  source_code_hash = data.archive_file.function.output_base64sha256
  timeout          = 10
  layers           = [aws_lambda_layer_version.logs.arn]

  environment {
    variables = {
      HTTP_ENDPOINT                    = var.ingest_url
      HTTP_AUTH_TYPE                   = "bearer"
      HTTP_AUTH_CREDENTIALS_SECRET_ARN = aws_secretsmanager_secret.ingest_token.arn
    }
  }

  # The secret must hold a value before the function's first cold start reads it.
  depends_on = [aws_secretsmanager_secret_version.ingest_token, aws_iam_role_policy.read_token]
}

output "function_name" {
  value = aws_lambda_function.function.function_name
}

output "layer_version_arn" {
  value = aws_lambda_layer_version.logs.arn
}

output "secret_arn" {
  value = aws_secretsmanager_secret.ingest_token.arn
}
