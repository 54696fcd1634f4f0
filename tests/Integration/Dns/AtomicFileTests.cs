using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Dns;

namespace KtConnect.Tests.Integration.Dns;

/// <summary>AtomicFile over a bind mount: the rename fails with EBUSY, and the content is written in place.</summary>
public sealed class AtomicFileTests
{
    [LinuxRootFact("mount", "umount")]
    public async Task A_bind_mounted_file_is_written_in_place_and_no_temporary_file_stays()
    {
        var dir = Directory.CreateTempSubdirectory("kt-atomic-").FullName;
        var real = Path.Combine(dir, "real");
        var mounted = Path.Combine(dir, "resolv.conf");
        await File.WriteAllTextAsync(real, "nameserver 192.0.2.1\n");
        await File.WriteAllTextAsync(mounted, "");
        (await ProcessRunner.RunAsync("mount", ["--bind", real, mounted])).EnsureSuccess("MountFailed");
        try
        {
            AtomicFile.Write(mounted, Encoding.ASCII.GetBytes("nameserver 127.0.0.153\n"));
            Assert.Equal("nameserver 127.0.0.153\n", await File.ReadAllTextAsync(mounted));
            Assert.Equal("nameserver 127.0.0.153\n", await File.ReadAllTextAsync(real));
            Assert.Equal(["real", "resolv.conf"], Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        }
        finally
        {
            await ProcessRunner.RunAsync("umount", [mounted]);
            Directory.Delete(dir, recursive: true);
        }
    }
}
