using System.Security.Cryptography;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Integration.Ssh;

public sealed class SshSmokeTests
{
    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Exec_DefaultConfig_ReturnsOutputAndExitCode()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var client = await sshd.ConnectAsync(key);
        var r = await client.ExecAsync("echo hello; echo oops >&2; exit 7");
        Assert.Equal(7, r.ExitStatus);
        Assert.Equal("hello\n", r.StdoutText);
        Assert.Equal("oops\n", r.StderrText);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task DirectTcpIp_Echo_RoundTrips()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key);
        await using var s = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        var data = RandomNumberGenerator.GetBytes(1 << 20);
        var write = Task.Run(async () =>
        {
            await s.WriteAsync(data);
            await s.CompleteWritesAsync();
        });
        var ms = new MemoryStream();
        await s.CopyToAsync(ms);
        await write;
        Assert.Equal(data, ms.ToArray());
    }
}
