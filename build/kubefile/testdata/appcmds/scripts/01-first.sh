#!/bin/sh
echo first script
