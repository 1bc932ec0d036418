#!/bin/sh
echo $(( $(cat count-COUNT_A.txt) + $(cat count-COUNT_B.txt) )) > total.txt
cat total.txt
