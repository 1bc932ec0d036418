#!/bin/sh
wc -w < "$1" | tr -d ' ' > "$2"
echo "$1: $(cat "$2") words"
