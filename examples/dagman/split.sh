#!/bin/sh
lines=$(wc -l < words.txt)
head -n $((lines / 2)) words.txt > part-a.txt
tail -n +$((lines / 2 + 1)) words.txt > part-b.txt
echo "split $lines lines"
