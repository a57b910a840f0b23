#!/usr/bin/env bash
# The check step of the policy-engine GitHub Action (action.yml at the repository root).
#
# Inputs arrive as environment variables (INPUT_PATH, INPUT_POLICIES, ...), never as workflow
# expressions, so nothing a pull request controls is ever pasted into shell code. The step:
#   - runs `policy-engine check` with the github format on stdout (annotations; the job summary
#     is appended to $GITHUB_STEP_SUMMARY by the github format itself), a JSON report in
#     $RUNNER_TEMP, the SARIF file and optionally the Markdown pull-request comment;
#   - in a pull request, passes the base commit (`--base`) and the pull request's reviews
#     (`--reviews`, fetched with INPUT_TOKEN) when the installed policy-engine supports them;
#   - writes blocking, failed, errors, waived and sarif-file to $GITHUB_OUTPUT;
#   - exits with check's exit code (0 nothing blocking, 1 blocking, 2 invalid input, 3 bug).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$(command -v python3 || command -v python)"
support() { "$python" "$here/action_support.py" "$@"; }

path="${INPUT_PATH:-.}"
context="${INPUT_CONTEXT:-pull-request}"
fail_on="${INPUT_FAIL_ON:-error}"
as_of="${INPUT_AS_OF:-}"
base="${INPUT_BASE:-}"
sarif_file="${INPUT_SARIF_FILE-policy-engine.sarif}"
markdown_file="${INPUT_MARKDOWN_FILE:-}"
token="${INPUT_TOKEN:-}"
# The token is only for the GitHub API; the check itself never sees it.
unset INPUT_TOKEN

work="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/policy-engine.XXXXXX")"
report="$work/report.json"
output_file="${GITHUB_OUTPUT:-/dev/null}"

# Options that newer releases add are passed only when this installation lists them.
check_help="$(policy-engine check --help)"
supports() {
  local pattern="(^|[[:space:],])$1([[:space:],=]|$)"
  [[ $check_help =~ $pattern ]]
}

args=(check "$path" --context "$context" --fail-on "$fail_on" --format github --format "json=$report")
if [[ -n $as_of ]]; then
  args+=(--as-of "$as_of")
fi
if [[ -n $sarif_file ]]; then
  args+=(--format "sarif=$sarif_file")
fi
if [[ -n $markdown_file ]]; then
  args+=(--format "markdown=$markdown_file")
fi
while IFS= read -r line; do
  line="${line#"${line%%[![:space:]]*}"}"
  line="${line%"${line##*[![:space:]]}"}"
  if [[ -n $line ]]; then
    args+=(--policies "$line")
  fi
done <<<"${INPUT_POLICIES:-}"

if [[ -z $base ]]; then
  base="$(support event pull_request.base.sha)"
fi
if [[ -n $base ]]; then
  if supports --base; then
    args+=(--base "$base")
  else
    echo "policy-engine: this version has no --base; checking the head revision only (base $base)" >&2
  fi
fi

pull_request="$(support event pull_request.number)"
if [[ -n $token && -n $pull_request ]]; then
  if supports --reviews; then
    if INPUT_TOKEN="$token" support reviews "$work/reviews.json"; then
      args+=(--reviews "$work/reviews.json")
    else
      echo "::warning title=policy-engine::could not read the reviews of pull request #$pull_request; sign-offs by review are not verified in this run"
    fi
  else
    echo "policy-engine: this version has no --reviews; the pull request's reviews are not read" >&2
  fi
fi

status=0
policy-engine "${args[@]}" || status=$?

{
  if [[ -f $report ]]; then
    support outputs "$report"
  else
    printf '%s=\n' blocking failed errors waived
  fi
  if [[ -n $sarif_file && -f $sarif_file ]]; then
    printf 'sarif-file=%s\n' "$sarif_file"
  else
    printf 'sarif-file=\n'
  fi
} >>"$output_file"

exit "$status"
