#!/bin/sh
echo second script
