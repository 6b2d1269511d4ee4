# Java image extras (sourced by docker/build-images.sh; $root, $dir, $imagedir, $WORK set).
#
# 1. openjdk-17-jdk-headless, with /proc mounted (its postinst runs java).
# 2. CodeBeaker's Java runtime in /usr/lib/codebeaker/java/ (train.sh): codebeaker.jar from
#    src/ (the JSON library codebeaker.Json, the edge template's base class codebeaker.Edge,
#    the compile driver codebeaker.Compile, the pre-started runner codebeaker.Launcher, the
#    resident runner codebeaker.Instance), and class-data-sharing archives made by training
#    runs of each.
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
chroot "$root" /bin/sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless && apt-get clean"
rm -rf "$root/tmp/cbjava" && mkdir -p "$root/tmp/cbjava"
cp -r "$imagedir/src" "$imagedir/train.sh" "$dir/edge.java" "$root/tmp/cbjava/"
chroot "$root" /bin/sh /tmp/cbjava/train.sh
rm -rf "$root/tmp/cbjava" "$root/tmp/hsperfdata_root"
umount "$root/proc"
