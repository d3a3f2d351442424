#!/bin/sh
kubectl apply -f calico.yaml
