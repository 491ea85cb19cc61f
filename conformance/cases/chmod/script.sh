#!/bin/sh
echo chmodded
