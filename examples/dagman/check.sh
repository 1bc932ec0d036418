#!/bin/sh
# POST script of SUM, on the submitting machine: the job's exit ($RETURN), then the total against wc
[ "$2" = 0 ] || exit "$2"
[ "$(cat total.txt)" = "$(wc -w < words.txt | tr -d ' ')" ] || { echo "total.txt differs from wc -w" >&2; exit 1; }
