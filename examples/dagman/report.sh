#!/bin/sh
echo "DAG status $1, $2 failed node(s); words: $(cat total.txt 2>/dev/null || echo none)"
