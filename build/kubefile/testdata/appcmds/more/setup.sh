#!/bin/sh
echo setup from more/
