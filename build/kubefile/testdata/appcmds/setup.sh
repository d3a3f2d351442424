#!/bin/sh
echo setup from the context top
